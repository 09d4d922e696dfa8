"""storvisor's executable specification. Start with spec/README.md."""
