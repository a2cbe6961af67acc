"""Car parks: live availability, reservations ahead, forecasts and guidance."""
