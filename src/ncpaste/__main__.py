from ncpaste.commands import main

raise SystemExit(main())
