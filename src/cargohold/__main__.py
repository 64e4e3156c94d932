from cargohold.cli.main import app

app(prog_name="cargohold")
