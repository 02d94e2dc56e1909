"""shoploop.evaluation"""
