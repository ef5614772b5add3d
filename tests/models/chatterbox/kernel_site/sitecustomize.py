"""Imported at the start of every Python process the models tier starts with this folder on
PYTHONPATH (the notebook's kernel among them): chatterbox-tts's hard-coded sizes shrink as
soon as it is imported, so its loaders read the tiny checkpoints the tests built."""

import tiny_chatterbox

tiny_chatterbox.shrink_when_imported()
