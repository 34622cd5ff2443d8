from feedrelay.cli import main

main()
