"""Protocol: messages, encodings, line formats and the sans-I/O session."""
