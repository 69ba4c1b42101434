"""Clock times on the 24-hour clock in English too, as in Finland: 09:00, 14:30 (Django's default is "9 a.m.")."""

TIME_FORMAT = "H:i"
