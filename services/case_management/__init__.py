"""Social services: cases opened from accepted referrals."""
