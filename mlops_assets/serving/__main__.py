from mlops_assets.serving.online import main

main()
