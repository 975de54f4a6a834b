-- signed_request apps may ask for signed JSON bodies instead of the form ('form' | 'json').
ALTER TABLE subscriptions ADD COLUMN content_type TEXT NOT NULL DEFAULT 'form';
