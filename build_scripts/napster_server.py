"""Where the frozen NapsterServer program starts: the same ``main()`` as ``napster-server``."""

import sys

from frozen_console import attach_parent_console

from server_app.__main__ import main

if __name__ == "__main__":
    attach_parent_console()
    sys.exit(main())
