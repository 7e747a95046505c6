from dcc_capacity.model.catalogue import catalogue, get_srv


def test_catalogue_has_all_129_variants_with_facts():
    cat = catalogue()
    assert len(cat) == 129
    assert sum(s.critical for s in cat.values()) == 37
    assert sum(s.non_device for s in cat.values()) == 16
    assert sum(s.dcc_scheduled for s in cat.values()) == 13


def test_command_variant_follows_flags():
    assert get_srv("8.7.1").command_variant == 4
    assert get_srv("12.2").command_variant == 8
    assert get_srv("4.6.1").command_variant == 1
    assert get_srv("9.9.9") is None
    assert get_srv("4.6.1").eligible_roles == {"IS", "GS"}
