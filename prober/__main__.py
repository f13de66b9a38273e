from prober.cli import main

raise SystemExit(main())
