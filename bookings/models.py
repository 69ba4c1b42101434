"""Service lines, opening rules, slots, customers and bookings arrive with the booking issue (DESIGN.md §3)."""
