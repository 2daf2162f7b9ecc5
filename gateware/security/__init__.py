"""Inside the seal: key slots, authenticated register writes and sealed readings."""
