"""Cases, their parties and the subjects enforced against."""
