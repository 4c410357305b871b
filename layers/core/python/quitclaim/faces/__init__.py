"""Face engine port, the dlib adapter behind it, galleries and matching."""
