# System keys and licenses arrive with the licensing issue.
