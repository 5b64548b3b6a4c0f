"""Squares: the hello world of task queues, in the three styles people arrive with."""
