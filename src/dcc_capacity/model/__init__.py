"""The volume model and its inputs: profiles, Tables A5-A7, the SRV catalogue, the SRV mix and fleet a
profile implies, NFRs and the provenance of every number. Pure data; first stage of the flow.
"""
