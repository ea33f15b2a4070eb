"""Recordings from other formats: NWB files (:mod:`.nwb`), brainsets / torch_brain session files
(:mod:`.brainsets`), and the rules they share (:mod:`.common`)."""
