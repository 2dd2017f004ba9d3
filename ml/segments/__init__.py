"""Customer segments: RFM codes and behavioural clusters with stable labels and plain names."""
