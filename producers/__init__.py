"""Event producers: replay of recordings and the contact-center simulator."""
