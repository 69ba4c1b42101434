"""Clock times as Kela writes them in Finnish: 9.00, 14.30."""

TIME_FORMAT = "G.i"
