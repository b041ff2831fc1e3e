"""Judgement: answer checking, step checkers, reward models, judges, sandboxed tests."""
