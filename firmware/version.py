# version: the firmware version reported in BootNotification and by the simulator's status.
# MIT licence.

VERSION = "0.1.0"
