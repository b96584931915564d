"""Reading and writing: images and their metadata, the user's tables and manifests, planned (atomic, never-overwriting) outputs."""
