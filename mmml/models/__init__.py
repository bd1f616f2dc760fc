"""Model families. Each folder holds configuration_<family>.py, modeling_<family>.py, processing_<family>.py."""
