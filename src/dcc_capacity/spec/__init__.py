"""What a run is: the settings that decide its offered load, how they resolve against the volume model
into rates per user class, and the safety ceilings. Read by the parent and by every Locust process.
"""
