# The alert recipients are the core's (appliance.AlertRecipient) since alerts are: the rows move there.

from django.db import migrations


def move_recipients(apps, schema_editor):
    old = apps.get_model("destinations", "AlertRecipient")
    new = apps.get_model("appliance", "AlertRecipient")
    new.objects.bulk_create(
        new(address=row.address, alert_classes=row.alert_classes, severities=row.severities)
        for row in old.objects.all()
    )


def move_back(apps, schema_editor):
    old = apps.get_model("destinations", "AlertRecipient")
    new = apps.get_model("appliance", "AlertRecipient")
    old.objects.bulk_create(
        old(address=row.address, alert_classes=row.alert_classes, severities=row.severities)
        for row in new.objects.all()
    )
    new.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0008_destinationcontrols_destination_controls_once_per_level_and_more"),
        ("appliance", "0008_alertrecipient"),
    ]

    operations = [
        migrations.RunPython(move_recipients, move_back),
        migrations.DeleteModel(name="AlertRecipient"),
    ]
