"""shoploop.recommend"""
