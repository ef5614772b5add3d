from .cli import emulator

emulator(prog_name="kaggletts emulator")
