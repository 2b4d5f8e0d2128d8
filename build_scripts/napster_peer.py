"""Where the frozen NapsterPeer program starts: the same ``main()`` as ``napster-peer``."""

import sys

from frozen_console import attach_parent_console

from app.__main__ import main

if __name__ == "__main__":
    attach_parent_console()
    sys.exit(main())
