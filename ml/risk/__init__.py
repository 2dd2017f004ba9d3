"""Order risk: fraud and abuse scores, decisions within a review budget, and their reasons."""
