"""Model families (each folder: configuration_<family>.py, modeling_<family>.py, processing_<family>.py) and
pretrained towers they can name in a sub-config (efficientnet_lite: configuration, modeling, conversion)."""
