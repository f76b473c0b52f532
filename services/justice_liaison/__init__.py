"""Police and justice: investigation records opened from accepted referrals."""
