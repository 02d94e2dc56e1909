"""shoploop.data"""
