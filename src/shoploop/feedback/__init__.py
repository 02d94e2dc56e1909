"""shoploop.feedback"""
