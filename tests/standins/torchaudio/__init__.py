"""Stand-in for torchaudio, which Kaggle's image has beside its torch and the Chatterbox
notebook imports before installing chatterbox-tts (so the install keeps the image's build).
The stand-in models never call it."""

STANDIN = True
