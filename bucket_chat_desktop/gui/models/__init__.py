"""Qt item models: rooms, one timeline per room, members."""
