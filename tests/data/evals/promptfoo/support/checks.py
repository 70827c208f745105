def polite(output, context):
    """Thanks the customer by company name (the var comes from the test)."""
    return context["vars"]["company"] in output


def get_assert(output, context):
    return len(output) > 0
