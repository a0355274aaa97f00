"""Data layer of OS-KDFT2: audio reading, corpus scanning, trial lists, the curriculum training set, the demo corpus."""
