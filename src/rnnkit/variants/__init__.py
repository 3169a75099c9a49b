"""Recurrent cell variants beyond the classic three: each module a cell, its layer and its registration."""
