from notify.entrypoints.main import main

main()
