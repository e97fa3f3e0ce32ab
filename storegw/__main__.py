from storegw.cli import main

main()
