"""``python -m stopline.cli``."""

from stopline.cli import main

main()
