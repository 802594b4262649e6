"""Controls in force (freezes, seals, watches), built from what agencies reported
they did, never from what was asked."""
