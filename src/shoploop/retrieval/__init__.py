"""shoploop.retrieval"""
