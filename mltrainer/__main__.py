from mltrainer.app import main

main()
