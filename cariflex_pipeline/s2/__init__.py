"""The S2 energy manager (CEM), plain Python: FRBC resource managers over a websocket, their state in the store."""
