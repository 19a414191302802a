from protolab.cli import main

main()
