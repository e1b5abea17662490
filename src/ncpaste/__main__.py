from ncpaste.cli import main

raise SystemExit(main())
