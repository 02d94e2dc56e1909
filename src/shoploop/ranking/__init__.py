"""shoploop.ranking"""
