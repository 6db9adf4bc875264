"""The API's routers, one per resource; classifier.api assembles them."""
