# The artifact model now belongs to nodes (nodes 0005 took over its state); its table stays,
# so this only drops it from deployments' state and touches no row.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0004_checkresult_will_be_set_up'),
        ('nodes', '0005_artifact'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Artifact')],
            database_operations=[],
        ),
    ]
