"""Clock times as Kela writes them in Finland Swedish: 9.00, 14.30 (Django's Swedish default is Sweden's 09:00)."""

TIME_FORMAT = "G.i"
