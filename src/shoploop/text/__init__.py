"""shoploop.text"""
